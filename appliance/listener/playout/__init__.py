"""Playout: the buffer between the network and the audio callback (:mod:`.buffer`). Loss
concealment, drift control and the latency target policy belong here too."""
