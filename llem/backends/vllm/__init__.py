"""The vllm backend: its class (backend) and what it checks and maps for llem (options)."""
