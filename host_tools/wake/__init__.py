# The wake word on the host. The board runs microWakeWord's published models with its own
# frontend (firmware/earshot/frontend.py) and int8 runtime (inference.py); here:
#   models.py           which model a board gets (bundled name or file), converted and cached
#   convert.py          a microWakeWord v2 .tflite + .json -> the board's model file (.eww)
#   frontend_tables.py  the frontend's tables, computed as TFLite Micro's C code does
#   decision.py         the board's wake decision, replayed over model outputs for sweeps
#   detect_runner.py    the firmware's wake-word code itself over recordings (MicroPython)
#   evaluate.py         `earshot wake eval`: the board beside pymicro-wakeword on held-out audio
#   data.py, texts.py   the held-out audio (espeak-ng, Piper, noises, music, babble)
#   cli.py              `earshot wake detect | eval | convert`
