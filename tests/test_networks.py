import numpy as np
import pytest
from keras import layers

from keras_gan import networks
from keras_gan.errors import InputError


def test_mlp_generator_is_the_seed_design():
    generator = networks.mlp_generator(latent_dim=100, image_shape=(28, 28, 1))
    dense = [layer for layer in generator.layers if isinstance(layer, layers.Dense)]
    assert [layer.units for layer in dense] == [128, 784]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "tanh"]
    assert generator.input_shape == (None, 100)
    assert generator.output_shape == (None, 28, 28, 1)
    # 100*128 + 128 + 128*784 + 784 parameters.
    assert generator.count_params() == 100 * 128 + 128 + 128 * 784 + 784


def test_mlp_discriminator_is_the_seed_design():
    discriminator = networks.mlp_discriminator(image_shape=(28, 28, 1))
    dense = [x for x in discriminator.layers if isinstance(x, layers.Dense)]
    assert [layer.units for layer in dense] == [128, 1]
    leaky = [x for x in discriminator.layers if isinstance(x, layers.LeakyReLU)]
    assert len(leaky) == 1 and leaky[0].negative_slope == pytest.approx(0.2)
    assert discriminator.output_shape == (None, 1)
    assert discriminator.count_params() == 784 * 128 + 128 + 128 + 1


def test_generator_output_range_and_shape_for_other_shapes():
    generator = networks.mlp_generator(latent_dim=4, image_shape=(8, 8, 3))
    images = np.asarray(generator(np.random.normal(size=(2, 4)) * 100))
    assert images.shape == (2, 8, 8, 3)
    assert images.min() >= -1.0 and images.max() <= 1.0


def test_build_by_name_and_bad_input():
    generator, discriminator = networks.build("mlp", 4, (8, 8, 1))
    assert generator.output_shape[1:] == discriminator.input_shape[1:] == (8, 8, 1)
    with pytest.raises(InputError, match="Unknown architecture 'vit'"):
        networks.build("vit", 4, (8, 8, 1))
    with pytest.raises(InputError, match="image_shape"):
        networks.mlp_generator(4, (8, 8))
    with pytest.raises(InputError, match="latent_dim"):
        networks.mlp_generator(0, (8, 8, 1))
