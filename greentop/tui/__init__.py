"""The Textual user interface of greentop: widgets and, later, the live and replay apps."""
