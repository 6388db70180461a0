# ALMA Data Reduction Script

# Calibration

thesteps = []
step_title = {0: 'Import of the ASDM',
              1: 'Fix of SYSCAL table times',
              2: 'Fix of the planets positions (fixplanets)',
              3: 'listobs',
              4: 'A priori flagging',
              5: 'Generation and time averaging of the WVR cal table',
              6: 'Generation of the Tsys cal table',
              7: 'Generation of the antenna position cal table',
              8: 'Application of the WVR, Tsys and antpos cal tables',
              9: 'Split out science SPWs and time average',
              10: 'Listobs, clear pointing table, and save original flags',
              11: 'Initial flagging',
              12: 'Putting a model for the flux calibrator(s)',
              13: 'Save flags before bandpass cal',
              14: 'Bandpass calibration',
              15: 'Save flags before gain cal',
              16: 'Gain calibration',
              17: 'Restore flags before applycal',
              18: 'Application of the bandpass and gain cal tables',
              19: 'Split out corrected column'}

try:
  print 'List of steps to be executed ...', mysteps
  thesteps = mysteps
except:
  print 'global variable mysteps not set.'
if (thesteps==[]):
  thesteps = range(0,len(step_title))
  print 'Executing all steps: ', thesteps

# The Python variable 'mysteps' will control which steps
# are executed when you start the script using
#   execfile('scriptForCalibration.py')
# e.g.
#   mysteps = [2,3,4]# before starting the script will make the script execute
# only steps 2, 3, and 4
# Setting mysteps = [] will make it execute all steps.

import re

if re.search('^4.2.2', casadef.casa_version) == None:
 sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 4.2.2')

# CALIBRATE_AMPLI: Titan
# CALIBRATE_ATMOSPHERE: J0423-0120,J0334-4008,Titan,NGC_1365
# CALIBRATE_BANDPASS: J0423-0120
# CALIBRATE_FLUX: Titan
# CALIBRATE_PHASE: J0334-4008
# CALIBRATE_WVR: J0423-0120,J0334-4008,Titan,NGC_1365
# OBSERVE_TARGET: NGC_1365

# Using reference antenna = DV11

# A priori flagging
mystep = 4
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  flagdata(vis = 'uid___A002_X9d13e5_X1a0.ms',
    mode = 'manual',
    spw = '1~24',
    autocorr = T,
    flagbackup = F)

  flagdata(vis = 'uid___A002_X9d13e5_X1a0.ms',
    mode = 'manual',
    intent = '*POINTING*,*SIDEBAND_RATIO*,*ATMOSPHERE*',
    flagbackup = F)

  flagcmd(vis = 'uid___A002_X9d13e5_X1a0.ms',
    inpmode = 'table',
    useapplied = True,
    action = 'apply')

# Initial flagging
mystep = 11
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  # Flagging shadowed data

  flagdata(vis = 'uid___A002_X9d13e5_X1a0.ms.split',
    mode = 'shadow',
    flagbackup = F)

  # Flagging atmospheric line(s)

  flagdata(vis = 'uid___A002_X9d13e5_X1a0.ms.split',
    mode = 'manual',
    spw = '2:0~2731',
    field = '2',
    flagbackup = F)

  # Flagging atmospheric line(s)

  flagdata(vis = 'uid___A002_X9d13e5_X1a0.ms.split',
    mode = 'manual',
    spw = '2:0~2731',
    field = '2',
    flagbackup = F)

  # Flags, leftover Tsys artefacts and atmospheric lines in calibrators (see casalog.post('x (y'))
  flagdata(vis='uid___A002_X9d13e5_X1a0.ms.split', field = '0',
        spw='0:2165~2185,1:2260~2280;2909~2915',
           mode='manual', flagbackup = F)

  # WVR LO spike, all sources
  flagdata(vis = 'uid___A002_X9d13e5_X1a0.ms.split', mode = 'manual', field = '', spw = '3:1915~1925', flagbackup = F)

  # Flagging edge channels

  flagdata(vis = 'uid___A002_X9d13e5_X1a0.ms.split.tsys',
    mode = 'manual',
    spw = '9:0~3;124~127,11:0~3;124~127',
    flagbackup = F)

  flagdata(vis = 'uid___A002_X9d13e5_X1a0.ms.split',
    mode = 'manual', antenna = 'DV08', field = '1',
    spw = '1:1000~1200', flagbackup = F)

#  flagdata(vis = 'uid___A002_X9d13e5_X1a0.ms.split',
#    mode = 'manual',
#    spw = '1:0~104',
#    field = '2')

# Putting a model for the flux calibrator(s)
mystep = 12
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  setjy(vis = 'uid___A002_X9d13e5_X1a0.ms.split',
    field = '2', # Titan
    spw = '0,1,2,3',
    standard = 'Butler-JPL-Horizons 2012')

# Bandpass calibration
mystep = 14
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  bandpass(vis = 'uid___A002_X9d13e5_X1a0.ms.split',
    caltable = 'uid___A002_X9d13e5_X1a0.ms.split.bandpass',
    field = '0', # J0423-0120
    solint = 'inf,20MHz',
    combine = 'scan',
    refant = 'DV11',
    solnorm = T,
    bandtype = 'B',
    gaintable = 'uid___A002_X9d13e5_X1a0.ms.split.ap_pre_bandpass')

# Gain calibration
mystep = 16
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  gaincal(vis = 'uid___A002_X9d13e5_X1a0.ms.split',
    caltable = 'uid___A002_X9d13e5_X1a0.ms.split.phase_int',
    field = '0~2', # J0423-0120,J0334-4008,Titan
    solint = 'int',
    refant = 'DV11',
    gaintype = 'G',
    calmode = 'p',
    gaintable = 'uid___A002_X9d13e5_X1a0.ms.split.bandpass')

  fluxscale(vis = 'uid___A002_X9d13e5_X1a0.ms.split',
    caltable = 'uid___A002_X9d13e5_X1a0.ms.split.ampli_inf',
    fluxtable = 'uid___A002_X9d13e5_X1a0.ms.split.flux_inf',
    reference = '2') # Titan

  # residual atmospheric line in the target
  flagdata(vis = 'uid___A002_X9d13e5_X1a0.ms.split.cal', mode = 'manual', field = '3', spw = '1:3000~3050', flagbackup = F)
