# The receiver's web page (`earshot receive --web`): server.py serves it on the receiver's
# event loop, view.py renders it, history.py reads the session log, password.py keeps
# its password; static/ holds its one script and style sheet.
