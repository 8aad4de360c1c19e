"""The laptop side: audio sources (:mod:`.source`), the wire and RTP payload type for them
(:mod:`.plan`), packets (:mod:`.packetizer`), a real-time schedule (:mod:`.pacing`), the
socket (:mod:`.sender`) and the progress line (:mod:`.progress`)."""
