"""The gateway: an OpenAI- and Anthropic-compatible proxy that enforces quotas, release and the hunt's decisions."""
