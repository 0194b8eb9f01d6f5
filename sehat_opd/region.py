"India's states, districts and towns for the portal's address drop-downs."
import threading

from trytond.model import fields
from trytond.pool import PoolMeta
from trytond.transaction import Transaction

_CACHE = {}
_CACHE_LOCK = threading.Lock()


class Subdivision(metaclass=PoolMeta):
    __name__ = 'country.subdivision'

    sehat_cities = fields.Text(
        "Towns", help="Main towns of a district, one per line "
        "(offered in the portal's address form).")

    @classmethod
    def portal_regions(cls, language='en'):
        """States of India with their districts and towns, as /regions
        answers them. Reference data changes only with a data load, so the
        answer is kept per process and language."""
        key = (Transaction().database.name, language)
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
        with Transaction().set_context(language=language):
            states = cls.search([
                    ('country.code', '=', 'IN'),
                    ('parent', '=', None),
                    ], order=[('name', 'ASC')])
            districts = cls.search([
                    ('parent', 'in', [s.id for s in states]),
                    ], order=[('name', 'ASC')])
            by_state = {}
            for district in districts:
                by_state.setdefault(district.parent.id, []).append({
                        'code': district.code,
                        'name': district.name,
                        'cities': [c for c in
                            (district.sehat_cities or '').splitlines() if c],
                        })
            regions = [{
                    'code': state.code,
                    'name': state.name,
                    'districts': by_state.get(state.id, []),
                    } for state in states]
        with _CACHE_LOCK:
            _CACHE[key] = regions
        return regions

    @classmethod
    def write(cls, *args):
        super().write(*args)
        _CACHE.clear()

    @classmethod
    def create(cls, vlist):
        _CACHE.clear()
        return super().create(vlist)
