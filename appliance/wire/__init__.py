"""What travels between sender and listener, as bytes: the seed's raw PCM datagrams
(:mod:`.raw`), RTP and RTCP packets (:mod:`.rtp`, :mod:`.rtcp`), the payload types
(:mod:`.payload`) and the payload codecs (:mod:`.codecs`). Parsing and building only: no
sockets, no threads. A new payload type goes in :mod:`.payload` and, if it needs a new
encoding, a module in :mod:`.codecs`."""
