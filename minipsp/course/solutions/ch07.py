"""Reference solutions of chapter 07's exercises (ResNet and dilation)."""


def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """7.1: the output side of a convolution (or pooling) over `size` input pixels."""
    span = dilation * (kernel_size - 1) + 1          # the pixels one dilated kernel covers
    return (size + 2 * padding - span) // stride + 1


def receptive_field(layers):
    """7.2: the receptive field of a stack of (kernel_size, stride, dilation) layers, in input pixels."""
    rf, jump = 1, 1                 # jump: input pixels between neighbouring pixels of the current map
    for kernel_size, stride, dilation in layers:
        rf += dilation * (kernel_size - 1) * jump
        jump *= stride              # after the layer: its own taps are spaced by the jump of its input
    return rf
