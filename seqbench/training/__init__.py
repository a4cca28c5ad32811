"""Training the networks of Graves (2013): optimisers, regularisation, recipes and the trainer."""
