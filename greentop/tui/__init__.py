"""The Textual user interface of greentop: the live view (``app``), the replay (``replay``) and
their widgets."""
