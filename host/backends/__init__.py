"""What answers a policy call: the FINN IODMA driver over pynq (the board), the numpy emulator
of the fabric behind an emulated board and an emulated pynq (everywhere else), and the remote
mode (a policy served over the network)."""
