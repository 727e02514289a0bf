"""The gateway: an OpenAI- and Anthropic-compatible proxy that enforces quotas and the hunt's decisions."""
