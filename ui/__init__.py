"""The user interfaces: the ``zhiwen`` command (``ui.cli``) and the Gradio chat window (``ui.app.launch``)."""
