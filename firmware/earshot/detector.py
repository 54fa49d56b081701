# The wake-word detector interface: a pure streaming class fed one PCM frame at a time.
#   process(buf, at) -> bool   True on the frame where the wake phrase is detected; the
#                              frame is 20 ms of s16 PCM at byte offset `at` of buf
#   score                  the last score (0-255), for logs and tuning
# PLACEHOLDER: the real detector arrives with the wake-word issue. Until then NoDetector
# never fires and push-to-talk (a short button press) is the only trigger.


class NoDetector:
    name = "none"
    score = 0

    def process(self, buf, at):
        return False
