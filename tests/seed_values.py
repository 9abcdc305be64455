"""Numbers from the lecture material (../shared/SEED_CHECKS.md) shared by several tests."""

# W21 / C33: VGG-16 weights-only counts per layer ([002] table, biases not counted).
VGG16_WEIGHTS = [
    1_728,
    36_864,
    73_728,
    147_456,
    294_912,
    589_824,
    589_824,
    1_179_648,
    2_359_296,
    2_359_296,
    2_359_296,
    2_359_296,
    2_359_296,
    102_760_448,
    16_777_216,
    4_096_000,
]
# W21 / C34: output shapes of the conv/pool/FC rows ([002] table).
VGG16_SHAPES = [
    (224, 224, 64),
    (224, 224, 64),
    (112, 112, 64),
    (112, 112, 128),
    (112, 112, 128),
    (56, 56, 128),
    (56, 56, 256),
    (56, 56, 256),
    (56, 56, 256),
    (28, 28, 256),
    (28, 28, 512),
    (28, 28, 512),
    (28, 28, 512),
    (14, 14, 512),
    (14, 14, 512),
    (14, 14, 512),
    (14, 14, 512),
    (7, 7, 512),
    (4096,),
    (4096,),
    (1000,),
]
# W21 / C37: the table's "memory" column, one entry per row incl. INPUT (150K ... 1000).
