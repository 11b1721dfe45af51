"""The helper process cannot be started (as when the process limit is reached): every attempt
to start swanlab_autopatch's helper process fails the way fork/exec fails then."""
import subprocess

_Popen = subprocess.Popen


class Popen(_Popen):
    def __init__(self, args, *rest, **kwargs):
        if any("swanlab_autopatch.helper" in str(part) for part in (args if isinstance(args, (list, tuple))
                                                        else [args])):
            raise OSError(11, "Resource temporarily unavailable (injected)")
        super().__init__(args, *rest, **kwargs)


subprocess.Popen = Popen
