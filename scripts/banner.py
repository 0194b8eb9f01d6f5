#!/usr/bin/env python3
"Print where the demo is and how to log in (make run)."
import sys

port, database = sys.argv[1], sys.argv[2]
base = 'http://127.0.0.1:%s' % port
print(f"""
SeHAT OPD demo
  Back office (Tryton web client): {base}/
  Patient portal:                  {base}/{database}/opd/
  Doctor console:                  {base}/{database}/opd/doctor/
  Doctors' status:                 {base}/{database}/opd/doctors

Demo logins (back office and doctor console; database "{database}")
  admin / admin                    administrator
  dr.sharma / sehat-demo           doctor (General OPD, Medicine, 24x7 Demo OPD)
  dr.iyer, dr.khan, dr.singh, dr.rao, dr.das / sehat-demo   doctors
  staff.opd / sehat-demo           OPD staff

Patients register on the portal with any Indian mobile (e.g. 98xxxxxxxx);
OTPs and SMS texts appear in this log as "SMS to +91...".
Ctrl-C stops the server and the cron worker.
""", flush=True)
