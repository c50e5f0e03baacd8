"""Each backend's Python environment: what jobs/<backend>/ asks for, where a built venv lives
and whether it works (environments), building one (build), and a grid's environments
checked before Ray starts (status)."""
