"""Code that runs only in the helper process: the process that owns the SwanLab run of a
training (started by tracking/helper_process.py; the channel between them is channel.py)."""
