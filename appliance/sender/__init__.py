"""The laptop side: audio sources (:mod:`.source`: files decoded by PyAV in :mod:`.decode`,
the WAV fast path in :mod:`.wav`, raw PCM, stdin; :mod:`.capture`: an input device, live), the
format they are sent as (:mod:`.conversion`), the wire and RTP payload type for them
(:mod:`.plan`), packets (:mod:`.packetizer`), a real-time schedule (:mod:`.pacing`), the socket
(:mod:`.sender`) and the progress line (:mod:`.progress`)."""
