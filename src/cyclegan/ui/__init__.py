"""`cyclegan ui`: a web interface (Gradio) to translate images in the browser and to watch
training runs. Gradio is an optional extra (`cyclegan[ui]`), imported only by `app.py` and the
tabs; the modules that list models and read run folders work without it."""
