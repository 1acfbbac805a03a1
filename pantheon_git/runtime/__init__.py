"""Model runtimes: models.toml, the embedded model, llama.cpp in-process, a local server, replay."""
