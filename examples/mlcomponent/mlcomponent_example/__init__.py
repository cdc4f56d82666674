"""The MLComponent example: a house-price model behind seed 003's ``inference`` function."""
