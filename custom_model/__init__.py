"""Our own streaming Telugu codec and speech-to-speech model."""
