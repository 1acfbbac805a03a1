"""Agents as code: a spec (model, tools, prompt, limits), the built-in agents, the registry of a
repository's own, the prompt format and the tool-calling loop.

May import: errors, tools, runtime.
"""
