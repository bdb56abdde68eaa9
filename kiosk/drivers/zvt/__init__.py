"""ZVT, the ECR interface of DACH card terminals: codec, links (TCP, serial), driver."""
