"A signed prescription's content, as the model freezes it (tests, bench)."


def sample_content(medicines=3, name='Priya Sharma'):
    lines = [
        {'generic': 'Paracetamol', 'brand': 'Paracetamol 500 mg tablet',
            'strength': '500 mg', 'form': 'Tablet', 'route': 'Oral',
            'dose': '1 tablet', 'frequency': '3 times per day',
            'duration': '5 days', 'instructions': 'After food, if fever',
            'list': 'O'},
        {'generic': 'Cetirizine', 'brand': 'Cetirizine 10 mg tablet',
            'strength': '10 mg', 'form': 'Tablet', 'route': 'Oral',
            'dose': '1 tablet', 'frequency': '1 time per day at bedtime',
            'duration': '7 days', 'instructions': 'May cause drowsiness',
            'list': 'O'},
        {'generic': 'Amoxicillin', 'brand': 'Amoxicillin 500 mg capsule',
            'strength': '500 mg', 'form': 'Capsule', 'route': 'Oral',
            'dose': '1 capsule', 'frequency': '3 times per day',
            'duration': '5 days', 'instructions': 'Complete the course',
            'list': 'A'},
        ]
    return {
        'version': 1,
        'number': 'RX-2026-000042',
        'code': 'Zk3v9QpW2mXc7LrT1yHbNa',
        'issued_at': '2026-11-29T15:45:00+05:30',
        'institution': {
            'name': 'Command Hospital (Demo) - SeHAT OPD Hub',
            'address': 'Delhi Cantonment, New Delhi 110010'},
        'opd': 'General OPD',
        'token': 'GEN-007',
        'mode': 'video',
        'visit': 'first',
        'doctor': {
            'name': 'Dr. Anil Sharma',
            'qualification': 'MBBS, MD (Medicine)',
            'registration': 'DMC-48213',
            'council': 'Delhi Medical Council',
            'specialty': 'Internal Medicine'},
        'patient': {
            'name': name, 'initials': 'P. S.', 'age': 41, 'sex': 'Female',
            'patient_id': 'SH-7K3M-Q9XD-R',
            'service': 'Dependant (Spouse) - Army, IC-45678',
            'accompanied_by': None},
        'complaint': 'Fever and sore throat for 3 days',
        'history': 'No known drug allergy. Not pregnant.',
        'vitals': [['Temperature', '38.4 °C'], ['Pulse', '96 /min']],
        'diagnosis': 'Acute pharyngitis',
        'investigations': 'Complete blood count if fever persists',
        'medicines': [dict(lines[i % 3]) for i in range(medicines)],
        'notes': None,
        'advice': 'Warm saline gargles, plenty of fluids, rest.',
        'follow_up': 'After 5 days (04 Dec 2026), or earlier if worse',
        'referral': None,
        }
