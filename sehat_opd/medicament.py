"Medicines with their list under India's Telemedicine Practice Guidelines."
from trytond.model import fields
from trytond.pool import PoolMeta

TELEMEDICINE_LISTS = [
    (None, ''),
    ('O', "List O (over the counter type)"),
    ('A', "List A (first video consultation, refills)"),
    ('B', "List B (add-on at follow-up)"),
    ('prohibited', "Prohibited (Schedule X / NDPS)"),
    ]


class Medicament(metaclass=PoolMeta):
    __name__ = 'gnuhealth.medicament'

    telemedicine_list = fields.Selection(
        TELEMEDICINE_LISTS, "Telemedicine List",
        help="What a doctor may prescribe online (Telemedicine Practice "
        "Guidelines, 2020). A medicine without a list cannot be "
        "prescribed online.")
