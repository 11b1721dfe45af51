"""The SwanLab run of a training job: the Trainer callback and hooks, the run itself and the
configuration logged into it."""
