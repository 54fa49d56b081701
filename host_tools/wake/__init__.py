# The wake word on the host: everything here agrees bit for bit with what the board runs.
#   reference.py      the board's features, quantised model and decision rule, in NumPy
#   modelfile.py      model files (write, read, check) and quantisation of a float model
#   detect_runner.py  the firmware detector itself over long recordings (MicroPython unix
#                     port), and its cost in x86 instructions per second of audio
#   data.py, train.py, evaluate.py, cli.py   training data, training, evaluation, `earshot wake`
