import subprocess
import sys

import pytest

from distillguard.errors import ConfigError
from distillguard.watermark._deps import INSTALL_HINT, require

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'transformers', 'tokenizers'}:
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
"""


def test_core_and_light_watermark_modules_import_without_torch():
    code = BLOCK + """
import distillguard.cli, distillguard.watermark.cli, distillguard.watermark.detect
import distillguard.watermark.keys, distillguard.watermark.lexical, distillguard.watermark.suspect
from distillguard.errors import ConfigError
from distillguard.watermark.greenlist import GreenList, GreenListLogitsProcessor
from distillguard.watermark.keys import derive
try:
    GreenListLogitsProcessor(GreenList(derive(b'k' * 32, 0)))
except ConfigError as e:
    print(e)
assert 'torch' not in sys.modules
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert INSTALL_HINT in out.stdout


def test_require_names_the_extra():
    with pytest.raises(ConfigError, match=r"pip install 'distillguard\[watermark\]'"):
        require("no_such_module_for_distillguard")
