"""The gateway: an OpenAI- and Anthropic-compatible proxy that enforces quotas, gradual release and the hunt's decisions."""
