"""Agents as code: a spec (models, tools, prompt, limits), a registry, and the tool-calling loop."""
