"""placeholder"""
from dataclasses import dataclass
class OffsetTransform:
    name="x"
    def fit(self, lines):
        class S:
            def to_dict(self): return {}
        return S()
