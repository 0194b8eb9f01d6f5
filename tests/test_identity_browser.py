"""Issue 3 in Chromium: a patient registers, logs out, logs back in and
reads the portal in Hindi; the forms also work without JavaScript."""
import re

from playwright.sync_api import expect

from conftest import DESKTOP, shot_widths

PATIENT_ID = re.compile(r'^SH-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]$')


def _send_otp(page, mobile):
    page.fill('#f-mobile', mobile)
    page.click('button[value=send]')
    expect(page.locator('#f-code')).to_be_visible()


def _verify(page, server, mobile):
    page.fill('#f-code', server.otp(mobile))
    page.click('button[value=verify]')


def test_register_logout_login_hindi(page, server, new_mobile):
    "Register end to end, log out, log back in with an OTP, switch to Hindi"
    mobile = new_mobile()
    page.goto(server.portal + '/')
    shot_widths(page, 'identity-00-home')
    page.click('main a:has-text("Patient registration")')
    expect(page.locator('h1')).to_have_text('Patient registration')
    shot_widths(page, 'identity-01-register-mobile')

    _send_otp(page, mobile)
    expect(page.locator('main')).to_contain_text(
        '+91 %s %s' % (mobile[:5], mobile[5:]))
    # the resend button waits for the 30 seconds
    expect(page.locator('button[value=resend]')).to_be_disabled()
    shot_widths(page, 'identity-02-register-otp')
    page.fill('#f-code', '000000' if server.otp(mobile) != '000000'
        else '111111')
    page.click('button[value=verify]')
    expect(page.locator('#f-code-error')).to_be_visible()
    expect(page.locator('#f-code')).to_have_attribute('aria-invalid', 'true')
    _verify(page, server, mobile)

    form = page.locator('#registration')
    expect(form).to_be_visible()
    expect(page.locator('#f-mobile')).to_have_attribute('readonly', '')
    shot_widths(page, 'identity-03-register-form')

    # sent empty: every required field says so, next to it
    page.click('#registration button.big')
    expect(page.locator('#errors-summary')).to_be_visible()
    for field in ['name', 'gender', 'birth_date', 'address', 'pincode',
            'state', 'beneficiary_category', 'service', 'service_number']:
        control = page.locator('#f-%s' % field)
        expect(control).to_have_attribute('aria-invalid', 'true')
        described = control.get_attribute('aria-describedby')
        assert 'f-%s-error' % field in described, field
        expect(page.locator('#f-%s-error' % field)).to_be_visible()
    shot_widths(page, 'identity-04-register-errors')

    page.fill('#f-name', 'Kavita Sharma')
    page.select_option('#f-gender', 'f')
    page.fill('#f-birth_date', '1990-06-15')
    expect(page.locator('#f-birth_date-age')).to_contain_text('Age:')
    page.fill('#f-email', 'kavita@example.com')
    page.fill('#f-address', 'Quarter 14, MH Road')
    page.select_option('#f-state', 'IN-MH')
    # the district list follows the state (JavaScript)
    expect(page.locator('#f-district option[value=IN-MH-PUN]')
        ).to_have_count(1)
    page.select_option('#f-district', 'IN-MH-PUN')
    expect(page.locator('#f-city option', has_text='Pune Cantonment')
        ).to_have_count(1)
    page.select_option('#f-city', 'Pune Cantonment')
    expect(page.locator('#row-city_other')).to_be_hidden()
    page.fill('#f-pincode', '411001')
    page.select_option('#f-beneficiary_category', 'dependant')
    expect(page.locator('#f-relation')).to_be_visible()
    expect(page.locator('#f-echs_card')).to_be_hidden()
    page.select_option('#f-relation', 'spouse')
    page.select_option('#f-service', 'navy')
    page.fill('#f-service_number', '01234-N')
    shot_widths(page, 'identity-05-register-filled')
    # Enter in a field registers (it does not refresh the lists)
    page.locator('#f-service_number').press('Enter')

    expect(page.locator('h1')).to_have_text('Registration complete')
    patient_id = page.locator('#patient-id').inner_text().strip()
    assert PATIENT_ID.match(patient_id), patient_id
    assert patient_id in server.messages(mobile, 'registered')[-1]
    shot_widths(page, 'identity-06-welcome')

    page.click('nav >> text=My profile')
    expect(page.locator('#patient-id')).to_have_text(patient_id)
    main = page.locator('main')
    for text in ['Kavita Sharma', 'Pune Cantonment', 'Pune', 'Navy',
            'Spouse', '01234-N', 'kavita@example.com', 'staff']:
        expect(main).to_contain_text(text)
    expect(page.locator('main input:not([type=hidden])')).to_have_count(0)
    shot_widths(page, 'identity-07-profile')

    page.click('nav >> button:has-text("Log out")')
    expect(page.locator('.notice')).to_contain_text('logged out')
    page.goto(server.portal + '/profile')
    expect(page).to_have_url(re.compile(r'/login\?next='))
    shot_widths(page, 'identity-08-login')

    # keyboard only: Tab to the mobile field, type, Enter
    page.locator('body').focus()
    for _ in range(30):
        page.keyboard.press('Tab')
        if page.evaluate('document.activeElement.id') == 'f-mobile':
            break
    assert page.evaluate('document.activeElement.id') == 'f-mobile'
    page.keyboard.type(mobile)
    page.keyboard.press('Enter')
    expect(page.locator('#f-code')).to_be_visible()
    shot_widths(page, 'identity-09-login-otp')
    _verify(page, server, mobile)
    # back where the visitor wanted to go (next=)
    expect(page).to_have_url(re.compile(r'/opd/profile$'))
    expect(page.locator('#patient-id')).to_have_text(patient_id)

    page.click('a.lang')
    expect(page.locator('html')).to_have_attribute('lang', 'hi')
    expect(page.locator('h1')).to_have_text('मेरी प्रोफ़ाइल')
    expect(page.locator('main')).to_contain_text('नौसेना')
    shot_widths(page, 'identity-10-profile-hi')

    page.click('nav >> button:has-text("लॉग आउट")')
    expect(page.locator('html')).to_have_attribute('lang', 'hi')
    shot_widths(page, 'identity-11-login-hi')
    page.goto(server.portal + '/register')
    expect(page.locator('h1')).to_have_text('रोगी पंजीकरण')
    page.fill('#f-mobile', '12345')
    page.click('button[value=send]')
    expect(page.locator('#f-mobile-error')).to_contain_text('मोबाइल')
    shot_widths(page, 'identity-12-register-hi-error')
    page.goto(server.portal + '/recover')
    page.fill('#f-mobile', mobile)
    page.click('button[value=recover]')
    expect(page.locator('.notice')).to_be_visible()
    shot_widths(page, 'identity-13-recover-hi')
    assert patient_id in server.messages(mobile, 'recover')[-1]
    assert page.errors == []


def test_registered_mobile_points_to_login(page, server, api, new_mobile):
    "A mobile already registered is told so, with a link to log in"
    mobile = new_mobile()
    api.register(mobile)
    page.goto(server.portal + '/register')
    # the registration OTP of api.register was just sent: wait it out
    from helpers import age_otps
    age_otps(server, mobile)
    _send_otp(page, mobile)
    _verify(page, server, mobile)
    expect(page.locator('main')).to_contain_text(
        'This mobile number is already registered.')
    page.click('main a.button:has-text("Log in")')
    expect(page.locator('h1')).to_have_text('Patient login')
    shot_widths(page, 'identity-14-already-registered')


def test_register_without_javascript(browser, server, new_mobile):
    "Every step works as plain forms, the region lists included"
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        mobile = new_mobile()
        page.goto(server.portal + '/register')
        _send_otp(page, mobile)
        _verify(page, server, mobile)
        # a language switch keeps the step the patient is at
        page.goto(server.portal + '/register?lang=hi')
        expect(page.locator('h1')).to_have_text('रोगी पंजीकरण')
        expect(page.locator('legend').first).to_have_text('आपके बारे में')
        shot_widths(page, 'identity-16-register-form-hi')
        page.goto(server.portal + '/register?lang=en')
        page.fill('#f-name', 'रमेश कुमार')
        page.select_option('#f-gender', 'm')
        page.fill('#f-birth_date', '1958-01-26')
        page.fill('#f-address', 'House 7, Sainik Colony')
        page.select_option('#f-state', 'IN-PB')
        # without JavaScript the lists come with the page
        page.click('button[value=refresh]')
        expect(page.locator('#f-name')).to_have_value('रमेश कुमार')
        expect(page.locator('#f-name')).not_to_have_attribute(
            'aria-invalid', 'true')
        page.select_option('#f-district', 'IN-PB-JAL')
        page.click('button[value=refresh]')
        page.select_option('#f-city', '__other__')
        page.fill('#f-city_other', 'Adampur')
        page.fill('#f-pincode', '144102')
        page.select_option('#f-beneficiary_category', 'ex_serviceman')
        page.select_option('#f-service', 'air_force')
        page.fill('#f-service_number', '654321-F')
        page.fill('#f-rank', 'Sergeant')
        page.fill('#f-echs_card', 'ECHS-998877')
        shot_widths(page, 'identity-15-register-nojs')
        page.click('#registration button.big')
        expect(page.locator('h1')).to_have_text('Registration complete')
        patient_id = page.locator('#patient-id').inner_text().strip()
        assert PATIENT_ID.match(patient_id)
        page.goto(server.portal + '/profile')
        expect(page.locator('main')).to_contain_text('Adampur')
        expect(page.locator('main')).to_contain_text('ECHS-998877')
    finally:
        context.close()
