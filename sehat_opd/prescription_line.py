"""The lines of an e-prescription: GNU Health's prescription lines, checked
against the Telemedicine Practice Guidelines and frozen with their order.

A line is refused as soon as it is written when its medicine may not be
prescribed in the consultation of its order (mode, first consultation or
follow-up); the order checks every line again when it is signed. Once the
order is signed, its lines can be neither added, changed nor deleted.
"""
from trytond.i18n import gettext
from trytond.model import fields
from trytond.pool import Pool, PoolMeta

from . import telemedicine
from .exceptions import PrescriptionError
from .medicament import TELEMEDICINE_LISTS

PERIODS = {'minutes': "minutes", 'hours': "hours", 'days': "days",
    'months': "months", 'years': "years"}


class PrescriptionLine(metaclass=PoolMeta):
    __name__ = 'gnuhealth.prescription.line'

    sehat_refill = fields.Boolean("Refill",
        help="Re-prescribed as a refill of the patient's current treatment "
        "(a List A medicine may be given at a follow-up only as a refill).")
    telemedicine_list = fields.Function(fields.Selection(
            TELEMEDICINE_LISTS, "Telemedicine List"),
        'on_change_with_telemedicine_list')

    @fields.depends('medicament')
    def on_change_with_telemedicine_list(self, name=None):
        return self.medicament.telemedicine_list if self.medicament else None

    @classmethod
    def _frozen_orders(cls, order_ids):
        Order = Pool().get('gnuhealth.prescription.order')
        Order.check_sehat_frozen(Order.browse([i for i in order_ids if i]))

    @classmethod
    def create(cls, vlist):
        cls._frozen_orders({v.get('presc_order') for v in vlist})
        return super().create(vlist)

    @classmethod
    def write(cls, *args):
        actions = iter(args)
        ids = set()
        for lines, values in zip(actions, actions):
            ids |= {l.presc_order.id for l in lines if l.presc_order}
            ids.add(values.get('presc_order'))
        cls._frozen_orders(ids)
        super().write(*args)

    @classmethod
    def delete(cls, lines):
        cls._frozen_orders({l.presc_order.id for l in lines
                if l.presc_order})
        super().delete(lines)

    @classmethod
    def validate(cls, lines):
        super().validate(lines)
        for line in lines:
            order = line.presc_order
            if order and order.sehat_state == 'draft' and order.sehat_token:
                evaluation = order.sehat_token.evaluation
                if evaluation and evaluation.sehat_mode:
                    line.check_telemedicine(evaluation)

    def check_telemedicine(self, evaluation):
        """Refuse the medicine if the guidelines forbid it in this
        consultation; the message names the medicine and the rule."""
        medicament = self.medicament
        rule = telemedicine.refusal(
            medicament.telemedicine_list, evaluation.sehat_mode,
            evaluation.visit_type == 'followup',
            treated_in_person=bool(evaluation.treated_in_person),
            refill=bool(self.sehat_refill))
        if rule:
            raise PrescriptionError(gettext(
                    'sehat_opd.msg_rx_rule_%s' % rule,
                    medicine=medicament.rec_name,
                    mode=dict(telemedicine.MODES).get(
                        evaluation.sehat_mode, evaluation.sehat_mode
                        ).lower()))

    def sehat_content(self):
        "The line as printed: generic name, strength, form, dose..."
        medicament = self.medicament
        form = self.form or medicament.form
        route = self.route or medicament.route
        strength = None
        if medicament.strength:
            strength = '%s %s' % (telemedicine.format_number(medicament.strength),
                medicament.unit.rec_name if medicament.unit else '')
        dose = None
        if self.qty:
            dose = '%s %s' % (self.qty, (form.name if form else '').lower())
        if self.dose and (self.dose != medicament.strength or not dose):
            extra = '%s %s' % (telemedicine.format_number(self.dose),
                self.dose_unit.rec_name if self.dose_unit else '')
            dose = '%s (%s)' % (dose, extra.strip()) if dose else extra
        if self.common_dosage:
            frequency = self.common_dosage.name
        elif self.frequency_unit == 'wr' or self.frequency_prn:
            frequency = "When required"
        elif self.frequency and self.frequency_unit:
            frequency = 'Every %s %s' % (self.frequency,
                PERIODS.get(self.frequency_unit, self.frequency_unit))
        else:
            frequency = None
        if self.admin_times:
            frequency = '%s (%s)' % (frequency, self.admin_times) \
                if frequency else self.admin_times
        if self.duration_period == 'indefinite':
            duration = "Long term"
        elif self.duration and self.duration_period:
            duration = '%s %s' % (self.duration,
                PERIODS.get(self.duration_period, self.duration_period))
        else:
            duration = None
        instructions = self.short_comment or ''
        if self.sehat_refill:
            instructions = ('Refill. ' + instructions).strip()
        return {
            'generic': medicament.active_component or medicament.rec_name,
            'brand': medicament.rec_name,
            'strength': strength.strip() if strength else None,
            'form': form.name if form else None,
            'route': route.name if route else None,
            'dose': dose.strip() if dose else None,
            'frequency': frequency,
            'duration': duration,
            'instructions': instructions or None,
            'list': medicament.telemedicine_list,
            }
