import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pipeline import CropBox, InputError, InputErrorCode
from pipeline.crop import MIN_CROP_SIZE, crop_and_resize


@st.composite
def image_and_valid_box(draw):
    width = draw(st.integers(MIN_CROP_SIZE, 700))
    height = draw(st.integers(MIN_CROP_SIZE, 700))
    size = draw(st.integers(MIN_CROP_SIZE, min(width, height)))
    return width, height, CropBox(draw(st.integers(0, width - size)), draw(st.integers(0, height - size)), size)


@given(image_and_valid_box())
def test_any_valid_box_gives_the_model_input(case):
    width, height, box = case
    out = crop_and_resize(Image.new("RGB", (width, height), "teal"), box)
    assert out.size == (256, 256) and out.mode == "RGB"


@given(
    st.integers(MIN_CROP_SIZE, 400), st.integers(MIN_CROP_SIZE, 400),
    st.integers(-50, 450), st.integers(-50, 450), st.integers(-5, 450),
)
def test_any_invalid_box_is_the_documented_error(width, height, x, y, size):
    box = CropBox(x, y, size)
    valid = size >= MIN_CROP_SIZE and x >= 0 and y >= 0 and x + size <= width and y + size <= height
    if valid:
        assert box.validate(width, height) is box
    else:
        with pytest.raises(InputError) as err:
            crop_and_resize(Image.new("RGB", (width, height)), box)
        assert err.value.code is InputErrorCode.BAD_CROP


def test_default_is_centred_largest_square():
    assert CropBox.centered(400, 300) == CropBox(50, 0, 300)
    assert CropBox.centered(300, 401) == CropBox(0, 50, 300)


def test_crop_takes_the_right_region():
    image = Image.new("RGB", (512, 256), "black")
    image.paste((255, 0, 0), (256, 0, 512, 256))
    assert crop_and_resize(image, CropBox(256, 0, 256)).getpixel((128, 128)) == (255, 0, 0)
    assert crop_and_resize(image, CropBox(0, 0, 256)).getpixel((128, 128)) == (0, 0, 0)


@pytest.mark.parametrize("text", ["1,2", "a,b,c", "1.5,0,20", "1,2,3,4", ""])
def test_parse_refuses_malformed_text(text):
    with pytest.raises(InputError) as err:
        CropBox.parse(text)
    assert err.value.code is InputErrorCode.BAD_CROP


def test_parse_and_integral_floats():
    assert CropBox.parse("10, 20,30") == CropBox(10, 20, 30)
    assert CropBox(1.0, 2.0, 30.0) == CropBox(1, 2, 30)
    with pytest.raises(InputError):
        CropBox(True, 0, 30)
