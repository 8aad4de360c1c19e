"""Audio as values: the format (:mod:`.format`), sample arithmetic (:mod:`.pcm`) and rate and
channel conversion (:mod:`.convert`). Shared by the sender and the listener; imports nothing
else of the appliance."""
