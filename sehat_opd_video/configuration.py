"The video gateway among the deployment settings administrators see."
from trytond.modules.sehat_opd.tools import get_setting
from trytond.pool import PoolMeta

from .jitsi import SECTION

# (option, default, secret); the same names as TRYTOND_SEHAT_OPD_VIDEO__*
OPTIONS = [
    ('mode', 'jwt', False),
    ('domain', None, False),
    ('scheme', 'https', False),
    ('app_id', None, False),
    ('app_secret', None, True),
    ('audience', 'jitsi', False),
    ('subject', 'meet.jitsi', False),
    ('token_lifetime', '3600', False),
    ('jaas_kid', None, False),
    ('jaas_private_key_file', None, False),
    ('resolution', '360', False),
    ]


class Configuration(metaclass=PoolMeta):
    __name__ = 'sehat.opd.configuration'

    @classmethod
    def gateway_settings(cls):
        return super().gateway_settings() + [
            (SECTION, option, get_setting(SECTION, option, default), secret)
            for option, default, secret in OPTIONS]
