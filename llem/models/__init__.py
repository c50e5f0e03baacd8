"""What llem knows about a model before it loads it: its shape read from config.json (shape,
the one reader of it), the forward FLOPs of a request (flops), the GPU memory a job needs
(memory), and the built-in llem:<name> models (builtin: random weights, built offline by
tiny)."""
