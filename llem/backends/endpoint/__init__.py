"""The endpoint backend: an OpenAI-compatible server that is already running (a URL).

llem launches and loads nothing for it; server mode's load client sends the requests there.
Settings and their checks are in settings.py, which imports no library.
"""
