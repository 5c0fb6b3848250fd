"""The environment loop and its verdict: the environments a design runs against, seeded batched
episodes, the numpy float teacher, and the hw/sw comparison report."""
