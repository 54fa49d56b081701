# The virtual board: runs firmware/ unmodified under the MicroPython unix port with the
# shims in shims/, and records what an auditor would see as a trace.
