"""Audio as values: the format (:mod:`.format`), sample arithmetic (:mod:`.pcm`) and rate and
channel conversion (:mod:`.convert`); and PortAudio's devices, outputs and inputs alike
(:mod:`.devices`, which imports the optional PyAudio: import it lazily). Shared by the sender
and the listener; imports nothing else of the appliance but its errors."""
