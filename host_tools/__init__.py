# earshot host tools: the `earshot` command and the virtual board.
