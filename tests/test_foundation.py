"""The ground every issue stands on: the server, the back office, the
modules' routes on other databases."""
import os
import subprocess

import pytest
import requests
from playwright.sync_api import expect

from conftest import BIN, CONF, _env, _psql, shot


@pytest.fixture(scope='module')
def bare_database():
    "A Tryton database without the SeHAT OPD modules."
    name = 'sehat_bare_%s' % os.getpid()
    _psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    _psql('CREATE DATABASE "%s"' % name)
    passfile = CONF.parent / 'var' / 'bare-pass'
    passfile.write_text('admin')
    subprocess.run(
        [str(BIN / 'trytond-admin'), '-c', str(CONF), '-d', name, '--all',
            '--email', 'admin@example.com'],
        check=True, env=_env(TRYTONPASSFILE=str(passfile)),
        capture_output=True)
    yield name
    _psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def test_routes_404_without_modules(server, bare_database):
    "On a database without the modules, every route answers 404, not 500"
    for path in ['/opd/', '/opd/api/v1/opds', '/opd/api/v1/health',
            '/opd/api/v1/tokens/current', '/opd/static/sehat_opd/portal.css']:
        r = requests.get(server.base + '/' + bare_database + path, timeout=10)
        assert r.status_code == 404, (path, r.status_code)
    r = requests.post(server.base + '/' + bare_database + '/opd/api/v1/otp',
        json={'mobile': '9876543210', 'purpose': 'register'}, timeout=10)
    assert r.status_code == 404
    r = requests.get(server.base + '/no_such_db/opd/api/v1/opds', timeout=10)
    assert r.status_code == 404
    assert r.json()['error']['code'] == 'not_found'


def test_health(server):
    r = requests.get(server.api + '/health', timeout=10)
    assert r.status_code == 200 and r.json()['status'] == 'ok'


def test_doctor_sees_sehat_menu_in_back_office(server, page):
    "A demo doctor logs into the web client and finds the SeHAT OPD menu"
    page.goto(server.base + '/')
    # the web client loads its scripts and the database list first: slow on a
    # busy machine
    database = page.locator('.login-dialog #database:visible')
    expect(database).to_be_visible(timeout=60_000)
    if database.evaluate('e => e.tagName') == 'SELECT':
        database.select_option(server.database)
    elif database.is_editable():
        database.fill(server.database)
    page.locator('.login-dialog #login').fill('dr.sharma')
    page.locator('.login-dialog button[type=submit]').click()
    password = page.locator('.ask-dialog #ask-dialog-entry')
    expect(password).to_be_visible(timeout=30_000)
    password.fill('sehat-demo')
    page.locator('.ask-dialog button.btn-primary').click()
    menu = page.locator('#menu')
    expect(menu).to_contain_text('SeHAT OPD', timeout=30_000)
    sehat = page.locator('#menu tr', has_text='SeHAT OPD').first
    sehat.locator('.expander').click()
    expect(menu).to_contain_text('My OPD Queue', timeout=30_000)
    page.locator('#menu tr', has_text='My OPD Queue').first.locator(
        '.cell').first.click()
    expect(page.locator('#tablist li', has_text='My OPD Queue')).to_be_visible(
        timeout=30_000)
    shot(page, 'backoffice-doctor-menu')
