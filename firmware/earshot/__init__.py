# earshot firmware package (MicroPython). See main.py for how the pieces are put together.
