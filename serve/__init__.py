"""Front-ends around ``segment.predict.Predictor``: the Gradio web demo (``segment demo``).

Import ``serve.app`` for the page (it imports Gradio); ``serve.segmentation``
is the framework-free part, ``serve.cli`` the command.
"""
