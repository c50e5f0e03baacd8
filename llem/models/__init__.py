"""What llem knows about a model before it loads it: its shape read from config.json, the
forward FLOPs of a request, the GPU memory a job needs, and the built-in llem:<name> models
(random weights, built offline by tiny)."""
