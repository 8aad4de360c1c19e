"""The Pi side's audio path: datagrams in, sound out.

``receiver`` (the socket thread) -> ``sessions`` (who is playing; raw or RTP; when a stream
ends) -> ``depacketizer`` (datagrams to positioned frames) -> ``playout`` (the buffer) ->
``render`` (the audio callback's work: conversion, volume) -> ``outputs`` (PortAudio, a WAV
file), under one state machine (``state``); ``listener`` puts them together. Nothing here
imports the buttons, the LEDs, mDNS or the command line.
"""
