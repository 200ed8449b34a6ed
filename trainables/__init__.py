"""Everything that runs inside one trial: data, backbones with feature taps, transfer methods, the
training loop and the Ray Tune trainable."""
