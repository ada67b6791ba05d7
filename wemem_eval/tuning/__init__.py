"""Defense settings found by KerasTuner: the search (`tuner`) and the
privacy–utility score it maximizes (`objective`)."""
