"""Figures a medical branch reports: per OPD and day, and per doctor.

Both reports are SQL views over the tokens (`table_query`), filtered by the
dates and OPD of their context. Counts are computed by the view; the
median and 90th percentile of the waits and consultation lengths by
PostgreSQL's `percentile_cont`, or in Python on databases without it
(SQLite), with the same interpolation.
"""
import datetime as dt
import math
from collections import defaultdict

from sql import Literal, Null
from sql.aggregate import Aggregate, Count, Min, Sum
from sql.conditionals import Case, Coalesce
from sql.functions import CurrentTimestamp, Extract

from trytond import backend
from trytond.model import ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.transaction import Transaction

MEDIAN, P90 = 0.5, 0.9


def percentile(values, fraction):
    """The `fraction` percentile of `values` with linear interpolation
    between the closest ranks (PostgreSQL's percentile_cont); None if
    there are no values."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    position = fraction * (len(values) - 1)
    low, high = math.floor(position), math.ceil(position)
    if low == high:
        return float(values[low])
    return values[low] + (values[high] - values[low]) * (position - low)


class PercentileCont(Aggregate):
    "percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)"
    __slots__ = ()
    _sql = 'PERCENTILE_CONT'


class ReportContext(ModelView):
    "OPD Report Context"
    __name__ = 'sehat.opd.report.context'

    from_date = fields.Date("From Date",
        domain=['OR',
            ('from_date', '<=', Eval('to_date', None)),
            ('to_date', '=', None),
            ])
    to_date = fields.Date("To Date")
    opd = fields.Many2One('sehat.opd', "OPD")

    @classmethod
    def default_from_date(cls):
        Date = Pool().get('ir.date')
        return (Transaction().context.get('from_date')
            or Date.today() - dt.timedelta(days=30))

    @classmethod
    def default_to_date(cls):
        # the company's today (Asia/Kolkata for an Indian institution): the
        # tokens' dates are the OPDs' local dates
        Date = Pool().get('ir.date')
        return Transaction().context.get('to_date') or Date.today()

    @classmethod
    def default_opd(cls):
        return Transaction().context.get('opd')


class _TokenReport(ModelSQL, ModelView):
    "Common parts of the reports made from tokens"
    opd = fields.Many2One('sehat.opd', "OPD", readonly=True)
    date = fields.Date("Date", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [('date', 'DESC'), ('opd', 'ASC'), ('id', 'ASC')]

    @classmethod
    def _token_where(cls, token):
        "The tokens of the context's dates and OPD."
        context = Transaction().context
        where = Literal(True)
        if context.get('from_date'):
            where &= token.date >= context['from_date']
        if context.get('to_date'):
            where &= token.date <= context['to_date']
        if context.get('opd'):
            where &= token.opd == context['opd']
        return where

    @staticmethod
    def _common_columns(token):
        # the ids of a group: its first token's, unique as groups are disjoint
        return [
            Min(token.id).as_('id'),
            Literal(0).as_('create_uid'),
            CurrentTimestamp().as_('create_date'),
            Literal(None).as_('write_uid'),
            Literal(None).as_('write_date'),
            token.opd.as_('opd'),
            token.date.as_('date'),
            ]

    @classmethod
    def _percentile_in_sql(cls):
        "Whether the database computes percentile_cont itself."
        return backend.name == 'postgresql'

    @classmethod
    def _durations(cls, records, group_by):
        """{record id: {'wait': [...], 'consultation': [...]}} in seconds, or,
        on PostgreSQL, {record id: {name: percentile}} directly.

        `group_by` names the token columns a record stands for.
        """
        pool = Pool()
        Token = pool.get('sehat.opd.token')
        token = Token.__table__()
        cursor = Transaction().connection.cursor()
        keys = {tuple(getattr(getattr(r, c), 'id', getattr(r, c))
                for c in group_by): r.id for r in records}
        columns = [getattr(token, c) for c in group_by]
        where = columns[0].in_(list({k[0] for k in keys}))
        where &= token.date.in_(list({k[1] for k in keys}))
        where &= cls._token_where(token)
        waited = (token.called_at != Null)
        consulted = ((token.state == 'completed')
            & (token.started_at != Null) & (token.ended_at != Null))
        if cls._percentile_in_sql():
            wait = Case((waited, Extract('EPOCH',
                        token.called_at - token.create_date)))
            consultation = Case((consulted, Extract('EPOCH',
                        token.ended_at - token.started_at)))
            cursor.execute(*token.select(*columns,
                    PercentileCont(Literal(MEDIAN), within=[wait]),
                    PercentileCont(Literal(P90), within=[wait]),
                    PercentileCont(Literal(MEDIAN), within=[consultation]),
                    PercentileCont(Literal(P90), within=[consultation]),
                    where=where, group_by=columns))
            result = {}
            for row in cursor:
                key, values = tuple(row[:len(columns)]), row[len(columns):]
                if key in keys:
                    result[keys[key]] = dict(zip(
                            ['wait_median', 'wait_p90',
                                'consultation_median', 'consultation_p90'],
                            values))
            return result
        cursor.execute(*token.select(*columns,
                token.create_date, token.called_at, token.state,
                token.started_at, token.ended_at, where=where))
        samples = defaultdict(lambda: {'wait': [], 'consultation': []})
        for row in cursor:
            key = tuple(row[:len(columns)])
            if key not in keys:
                continue
            created, called, state, started, ended = row[len(columns):]
            sample = samples[keys[key]]
            if called:
                sample['wait'].append(_seconds(called, created))
            if state == 'completed' and started and ended:
                sample['consultation'].append(_seconds(ended, started))
        return {
            id_: {
                'wait_median': percentile(s['wait'], MEDIAN),
                'wait_p90': percentile(s['wait'], P90),
                'consultation_median': percentile(s['consultation'], MEDIAN),
                'consultation_p90': percentile(s['consultation'], P90),
                } for id_, s in samples.items()}


def _seconds(end, start):
    if isinstance(end, str):
        # SQLite returns timestamps as text
        end, start = (dt.datetime.fromisoformat(v) for v in (end, start))
    return (end - start).total_seconds()


class OPDDay(_TokenReport):
    """OPD Day Figures

    One line per OPD and day: tokens issued, consulted, cancelled, expired,
    missed calls, and how long patients waited and consulted (minutes).
    """
    __name__ = 'sehat.opd.report'

    issued = fields.Integer("Issued", readonly=True)
    consulted = fields.Integer("Consulted", readonly=True,
        help="Tokens completed: the consultation took place.")
    cancelled = fields.Integer("Cancelled", readonly=True)
    expired = fields.Integer("Expired", readonly=True)
    in_progress = fields.Integer("In Progress", readonly=True,
        help="Waiting, called or in consultation.")
    missed_calls = fields.Integer("Missed Calls", readonly=True)
    wait_median = fields.Function(fields.Float(
            "Median Wait", digits=(16, 1),
            help="Minutes from the token's issue to the doctor's call."),
        'get_durations')
    wait_p90 = fields.Function(fields.Float(
            "90th Percentile Wait", digits=(16, 1),
            help="Nine patients in ten were called within these minutes."),
        'get_durations')
    consultation_median = fields.Function(fields.Float(
            "Median Consultation", digits=(16, 1), help="In minutes."),
        'get_durations')
    consultation_p90 = fields.Function(fields.Float(
            "90th Percentile Consultation", digits=(16, 1),
            help="In minutes."),
        'get_durations')

    @classmethod
    def table_query(cls):
        pool = Pool()
        Token = pool.get('sehat.opd.token')
        token = Token.__table__()

        def count(states):
            return Sum(Case((token.state.in_(states), 1), else_=0))
        return token.select(*cls._common_columns(token),
            Count(Literal('*')).as_('issued'),
            count(['completed']).as_('consulted'),
            count(['cancelled']).as_('cancelled'),
            count(['expired']).as_('expired'),
            count(['waiting', 'called', 'in_consultation']).as_(
                'in_progress'),
            Sum(Coalesce(token.missed_calls, 0)).as_('missed_calls'),
            where=cls._token_where(token),
            group_by=[token.opd, token.date])

    @classmethod
    def get_durations(cls, records, names):
        durations = cls._durations(records, ['opd', 'date'])
        result = {name: {} for name in names}
        for record in records:
            values = durations.get(record.id, {})
            for name in names:
                seconds = values.get(name)
                result[name][record.id] = (
                    round(seconds / 60, 1) if seconds is not None else None)
        return result


class DoctorDay(_TokenReport):
    """Doctor Consultations

    One line per doctor, OPD and day: the consultations they completed and
    their length in minutes.
    """
    __name__ = 'sehat.opd.report.doctor'

    healthprof = fields.Many2One(
        'gnuhealth.healthprofessional', "Doctor", readonly=True)
    consultations = fields.Integer("Consultations", readonly=True)
    consultation_median = fields.Function(fields.Float(
            "Median Consultation", digits=(16, 1), help="In minutes."),
        'get_durations')
    consultation_p90 = fields.Function(fields.Float(
            "90th Percentile Consultation", digits=(16, 1),
            help="In minutes."),
        'get_durations')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(2, ('healthprof', 'ASC'))

    @classmethod
    def table_query(cls):
        pool = Pool()
        Token = pool.get('sehat.opd.token')
        token = Token.__table__()
        return token.select(*cls._common_columns(token),
            token.healthprof.as_('healthprof'),
            Count(Literal('*')).as_('consultations'),
            where=cls._token_where(token) & (token.state == 'completed')
            & (token.healthprof != Null),
            group_by=[token.opd, token.date, token.healthprof])

    @classmethod
    def get_durations(cls, records, names):
        durations = cls._durations(records, ['opd', 'date', 'healthprof'])
        result = {name: {} for name in names}
        for record in records:
            values = durations.get(record.id, {})
            for name in names:
                seconds = values.get(name)
                result[name][record.id] = (
                    round(seconds / 60, 1) if seconds is not None else None)
        return result
