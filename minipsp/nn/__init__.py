"""Neural-network building blocks: `minipsp.nn.functional` (ops) and, later, modules."""
